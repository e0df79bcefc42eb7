"""Each app's rule for binding beyond loopback (`BindRule`): the server's (an API key) and the UI's (a token).

They live here, below both apps, because the CLI checks them before it imports either app: `tunesmith.serve` and
`tunesmith.ui` import torch and transformers (seconds, more on a cold disk), and a refusal that needs no model
should come at once, not after them. The apps check them again (a library caller may start one directly)."""

from tunesmith.web.access import BindRule

API_KEY_VARIABLE = "TUNESMITH_API_KEY"
TOKEN_VARIABLE = "TUNESMITH_UI_TOKEN"

SERVER_BIND = BindRule(secret="an API key", option="--api-key", variable=API_KEY_VARIABLE, exposes="use the model")
UI_BIND = BindRule(secret="a token", option="--token", variable=TOKEN_VARIABLE,
                   exposes="read your runs, chat with their models and change reviews and labels")
