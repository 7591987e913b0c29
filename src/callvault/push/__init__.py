"""Web Push (SPEC 6, issue 9): the server's VAPID key, the devices users
subscribed, and sending one encrypted message to one device.

RFC 8030 (delivery), RFC 8291 (message encryption, ``aes128gcm``),
RFC 8292 (VAPID: the server identifies itself to the push service).
"""
