"""Sans-IO IMAP4rev2 (RFC 9051) server core, serving IMAP4rev1 (RFC 3501) clients too.

Grammar with literals, commands, responses, sequence sets, the SEARCH key tree, FETCH
items and their rendering, modified UTF-7 mailbox names. Never imports asyncio, socket,
ssl, time or the store: a driver in ``postel.server`` feeds it bytes and runs commands.
"""
