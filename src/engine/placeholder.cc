// Removed once the engine has sources.
