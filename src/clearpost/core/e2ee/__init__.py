"""End-to-end encryption formats shared by server and client (vodozemac underneath)."""
