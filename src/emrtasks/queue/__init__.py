"""The job queue: the `jobs` table, its claim/complete/reschedule/reap statements, retry delays, and the
worker.
"""
