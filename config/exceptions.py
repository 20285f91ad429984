class SettingsError(Exception):
    """Settings could not be loaded; the message names every invalid value."""
