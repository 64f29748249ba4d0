from ksdelete.cli import main

main()
