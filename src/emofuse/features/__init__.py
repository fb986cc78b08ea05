"""emofuse.features"""
