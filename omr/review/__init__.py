"""The examiner review station: decisions as audited events, and the web app (`omr review`)."""
