from capc.cli import main

main()
