"""A third-party perfwarden plugin distribution, as a user would write one."""
