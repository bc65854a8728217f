DROP TABLE web_logins;
DROP TABLE web_sessions;
