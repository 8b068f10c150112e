from camp.cli import main

main()
