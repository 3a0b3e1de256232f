"""Providers: every external system the backend talks to is reached through a port defined here.

`base` holds the messaging port (`MessagingProvider`) and its error tree, `mock` the local adapter,
`whatsapp_cloud` the WhatsApp Cloud API adapter (the only backend module that imports `requests`), and
`registry` picks the adapter for the environment."""
