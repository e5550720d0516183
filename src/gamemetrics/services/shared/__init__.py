"""Building blocks every HTTP service uses the same way (health routes)."""
