"""``driftwarden report``: a reference against a current table, compared and rendered as HTML."""
