import RehostCommands

Rehost.main()
