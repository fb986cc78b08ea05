"""emofuse.serve"""
