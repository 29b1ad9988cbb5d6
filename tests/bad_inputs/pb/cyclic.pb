
;
xPlaceholder*
T0*
dtype0*
shape
:

aAddV2xb*
T0

bAddV2ax*
T0

outIdentityb*
T0