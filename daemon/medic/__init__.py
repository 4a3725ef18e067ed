"""medic: a self-healing monitoring daemon for Linux hosts."""
