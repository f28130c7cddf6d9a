"""notification_module: email, SMS, the inbox, preferences and the delivery log."""
