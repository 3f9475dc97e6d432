-- An API token may act as one user (their role's permissions, as in chat) instead of as the org.
ALTER TABLE api_tokens ADD COLUMN user_id INTEGER REFERENCES users(id);
