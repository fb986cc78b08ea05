"""emofuse.evaluate"""
