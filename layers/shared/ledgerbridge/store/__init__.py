"""Data access: DynamoDB only, no HTTP, no provider knowledge."""
