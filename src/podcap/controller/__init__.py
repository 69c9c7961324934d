"""The controller: users, tokens, ownership of captures, routing to agents."""
