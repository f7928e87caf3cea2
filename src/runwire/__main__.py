from runwire.cli import main

main()
