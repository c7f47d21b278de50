from bootforge.cli import main

main()
