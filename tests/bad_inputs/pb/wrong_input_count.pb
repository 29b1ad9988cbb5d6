
;
xPlaceholder*
T0*
dtype0*
shape
:

yAddV2x*
T0