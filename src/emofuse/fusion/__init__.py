"""emofuse.fusion"""
