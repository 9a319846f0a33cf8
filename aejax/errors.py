"""The two ways a run stops on purpose. Both print one line from the CLI."""


class ConfigError(ValueError):
    """A setting is missing, unknown or out of range. The message is one line."""


class Diverged(RuntimeError):
    """A member's loss became NaN or infinite."""

    def __init__(self, member: int, step: int, loss: float):
        super().__init__(f"training diverged: loss={loss} at step {step} of member {member}")
        self.member, self.step = member, step
