
;
xPlaceholder*
T0*
dtype0*
shape
:

yRelunowhere*
T0