from .cli.app import main

if __name__ == "__main__":  # not when a spawned worker process re-imports the parent's main module
    main()
