-- The language a customer's letters are written in: 'en' or 'zh-CN'; NULL is English.
-- Applied by sqlx::migrate!; never edit an applied migration.
ALTER TABLE customers ADD COLUMN language TEXT;
