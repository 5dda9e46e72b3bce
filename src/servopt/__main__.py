from servopt.cli.app import main

main()
