"""The structures around the spine on CT, placed beside the segmented column: skin and
body (:mod:`.soft_tissue`), ilium, ribs, psoas, kidneys and bowel (:mod:`.surroundings`),
the great vessels with contrast (:mod:`.vessels`) and without (:mod:`.vessels_plain`),
unenhanced kidneys (:mod:`.kidneys_plain`)."""
