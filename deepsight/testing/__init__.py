"""Test infrastructure shared by the apps' suites: servers on loopback and clients for them."""
