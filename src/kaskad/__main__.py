from kaskad.cli import main

main()
