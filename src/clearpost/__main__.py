from clearpost.cli.main import app

app()
