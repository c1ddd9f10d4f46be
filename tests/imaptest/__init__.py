"""Runner for Dovecot's scripted IMAP tests (imaptest format).

`runner.run_script` replays one script against a server and returns a
`runner.ScriptResult`; `script.parse_script` parses a script; `match` holds the reply
parser and matcher; `client` is an independent IMAP connection (no postel code).

Spec: imaptest scripted_test.md (``../shared/conformance/imaptest/``).
"""
