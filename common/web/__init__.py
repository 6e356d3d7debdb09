"""The web teacher: a page on which a person answers the loop's questions (``oracle=web``)."""
