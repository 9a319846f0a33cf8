"""Studies built on the population engine; each is one `run(config, workdir)`."""
