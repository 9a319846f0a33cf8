"""The two ways a run stops on purpose. Both print one line from the CLI."""


class ConfigError(ValueError):
    """A setting is missing, unknown or out of range. The message is one line."""


class Diverged(RuntimeError):
    """A member's loss became NaN or infinite."""

    def __init__(self, member: int, step: int, loss: float):
        super().__init__(f"training diverged: loss={loss} at step {step} of member {member}")
        self.member, self.step = member, step


EXIT_CONFIG, EXIT_DIVERGED, EXIT_SWEEP_FAILED = 2, 3, 1  # aejax-train's exit statuses


def fail(message: str, status: int) -> None:
    """aejax-train's one-line error, then its exit status."""
    import sys

    print(f"aejax-train: error: {message}", file=sys.stderr)
    sys.exit(status)
