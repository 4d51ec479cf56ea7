from hubel.cli.main import command

command()
