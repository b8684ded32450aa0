from sidecar.cli.main import cli

cli()
