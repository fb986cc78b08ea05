"""emofuse.augment"""
