from kleio_cli.app import main

main()
