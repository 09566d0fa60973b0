from clearpost.cli.entry import main

main()
