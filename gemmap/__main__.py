from gemmap.cli import entry

entry()
