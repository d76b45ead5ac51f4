"""Use cases that api/, worker/ and cli/ share: they build on store/, queue/ and providers/."""
