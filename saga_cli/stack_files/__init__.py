"""Files that `saga stack` copies as they are: the Kafka pom and the broker's log4j2 config."""

__all__: list[str] = []
