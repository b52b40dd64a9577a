"""DICOM reading (index, series grouping, geometry, pixels) and writing."""
