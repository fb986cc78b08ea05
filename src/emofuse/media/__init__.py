"""emofuse.media"""
