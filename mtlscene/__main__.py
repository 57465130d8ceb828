"""``python -m mtlscene``: the same CLI as the ``mtlscene`` console script."""

from mtlscene.cli.main import main

if __name__ == "__main__":
    main()
