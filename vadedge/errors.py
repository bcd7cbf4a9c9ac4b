"""One exception type for bad user input, so CLIs print one clear line instead of a traceback."""


class VadInputError(ValueError):
    """Bad input from a user: a file, a field or a value that is not what was expected.

    The message is a single line naming the file or field and what was expected.
    """
