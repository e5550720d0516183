"""The shared consumer loop every worker of a topic runs on: poll, prepare, handle, commit, retry."""
