"""Web Push in the portal: the server's public key and the user's own devices."""
